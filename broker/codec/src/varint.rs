//! Variable byte integers.
