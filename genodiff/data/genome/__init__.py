"""Genome data: DNA vocabulary and tokenizer, validating FASTA reader, encoded cache, reference access,
BED intervals and training windows, the demo genome. Coordinates are 0-based half-open throughout."""
