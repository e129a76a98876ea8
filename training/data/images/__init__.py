"""Images streamed from disk: ``options`` (checked without reading the images), ``folder`` (a folder of
class folders, scanned and checked; ``decode_cache`` remembers which images decoded), ``imagenet_tfds``,
``feed`` (tf.data: decode, augment with ``augmentation``, batch) and ``dataset`` (all of it as the data
source a run trains on)."""
