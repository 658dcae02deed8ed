//! End-to-end tests of the pipeline: compile each fixture with the real `wasmc`
//! binary, run the executable, and check stdout, stderr and the exit code.
mod common;
