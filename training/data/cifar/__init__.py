"""CIFAR-10/100 in memory: ``sources`` loads ``arrays`` from tfds (``from_tfds``), the official archives
(``archives``) or the embedded sample, fed by ``feed_tf`` (tf.data) on TensorFlow and ``feed_numpy`` (a
Keras ``PyDataset``) on the other backends."""
