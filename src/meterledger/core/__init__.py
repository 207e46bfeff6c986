"""Domain vocabulary: ids, OBIS codes, units, UTC time, the reading record. Stdlib only."""
