//! Watch mode: follow the config (and its includes), regenerate, validate, reload.
