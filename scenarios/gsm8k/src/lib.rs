//! GSM8K scenario (placeholder until implemented).
