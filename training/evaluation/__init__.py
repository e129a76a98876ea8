"""Testing a trained network: ``protocols`` holds the papers' crops (centre, 10-crop, multi-scale fully
convolutional) and the evaluation of a network on a folder of images or ImageNet's validation set."""
