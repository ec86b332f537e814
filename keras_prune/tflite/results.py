"""What `convert` returns and raises: results, verification records, errors."""

import dataclasses


class ConversionError(RuntimeError):
    """The TFLite converter rejected the model (the message names the layers)."""


class VerificationError(RuntimeError):
    """The converted file does not load or does not match the Keras model."""


@dataclasses.dataclass
class Verification:
    """How the file behaved in the LiteRT interpreter, next to the Keras model."""

    runtime: str
    default_delegates: bool
    samples: int
    max_abs_diff: float
    agreement: float | None  # top-1 agreement on decisive samples, for class scores
    tolerance: str
    passed: bool
    snr_db: float | None = None  # output signal-to-noise ratio of a quantized file

    def __str__(self):
        agreement = "" if self.agreement is None else f", top-1 agreement {self.agreement:.1%}"
        if self.snr_db is not None:
            agreement += f", SNR {self.snr_db:.1f} dB"
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"verification {verdict} in {self.runtime} (default delegates "
            f"{'on' if self.default_delegates else 'off'}): {self.samples} samples, max |diff| "
            f"{self.max_abs_diff:.3g}{agreement}; tolerance: {self.tolerance}"
        )


@dataclasses.dataclass
class ConversionResult:
    """What `convert` produced: where, how big, what is stored sparse, how it verified."""

    path: str | None
    bytes: int
    gzip_bytes: int
    quantize: str | None
    sparse_tensors: list
    kept_dense: dict  # tensor name -> why it is not stored sparse
    verification: Verification | None
    content: bytes = dataclasses.field(repr=False)
    float_ops: list = dataclasses.field(default_factory=list)  # of an "int8" file

    def __str__(self):
        where = self.path or "(in memory)"
        lines = [
            f"{where}: {self.bytes:,} bytes ({self.gzip_bytes:,} gzipped), "
            f"quantize={self.quantize}, {len(self.sparse_tensors)} weight(s) stored sparse"
        ]
        if self.verification is not None:
            lines.append(str(self.verification))
        if self.float_ops:
            lines.append(f"{len(self.float_ops)} op(s) stay float32 in this int8 file: "
                         + ", ".join(self.float_ops[:6]) + (" ..." if len(self.float_ops) > 6
                                                            else ""))
        return "\n".join(lines)
