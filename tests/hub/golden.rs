//! Golden fixtures of the supplier mappings (being written).
