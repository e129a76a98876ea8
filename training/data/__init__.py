"""The data a run trains on: ``batches`` (the contract every source and feed keeps), ``cifar`` (CIFAR-10/100
in memory, from tfds, the official archives or the embedded sample), ``images`` (folders of images and tfds
``imagenet2012``, decoded and augmented on the fly) and ``tf_shared`` (what their TensorFlow sides share)."""
