"""`block_size` values whose zeros TFLite's sparse FULLY_CONNECTED kernels read.

TFLite stores a FULLY_CONNECTED weight as (units, input_dim), a Keras Dense kernel
as (input_dim, units). The sparse kernels read blocks of 4 (float) or 16 (int8)
consecutive inputs of one unit: (4, 1) / (16, 1) blocks of the Keras kernel.
"""

BLOCK_FLOAT = (4, 1)
BLOCK_INT8 = (16, 1)
