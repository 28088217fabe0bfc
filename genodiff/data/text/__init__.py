"""Text data: tokenizers (byte, Hugging Face, trained BPE) and text sources with memmap token caches."""
