//! The extension side on macOS (in progress).
