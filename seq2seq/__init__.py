"""seq2seq: English→French translation with the Transformer of Vaswani et al. (2017) and a decoder-only twin."""

__version__ = "0.1.0"

__all__ = ["Translator", "__version__"]


def __getattr__(name):
    # Importing the package stays cheap (no torch) until the translator is asked for.
    if name == "Translator":
        from seq2seq.translator import Translator  # noqa: PLC0415 - lazy: keeps `import seq2seq` free of torch

        return Translator
    raise AttributeError(name)
