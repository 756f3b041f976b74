//! yonder agent (under construction)
