"""Support code shared by the tests and the benchmarks (drivers, not tests); never installed with the package."""
