"""Views shared by every pruning family, imported downward by structured/, oneshot/ and
quantization/: a keras_hub model's config and blocks (`hub`), the kernels of Dense,
EinsumDense and convolution layers seen as 2-D matrices (`kernels`)."""
