"""The files that cross a capability boundary, one module each: a frozen dataclass, one validating reader, one
writer and a format version. Nothing outside this package parses these files."""
