//! Test support shared by unit and integration tests: tiny generated models and fixtures, so tests
//! run the real engine without a downloaded model. Not part of runner's public interface.
