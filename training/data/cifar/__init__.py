"""CIFAR-10/100 in memory: ``sources`` (tfds, ``archives``, the embedded sample) load ``arrays``, fed by
``feed_tf`` (tf.data) on TensorFlow and ``feed_numpy`` (a Keras ``PyDataset``) on the other backends."""
