"""Stage 1: land the raw Online Retail CSV in the lake, byte for byte, with a manifest."""
