// Empty: the target exists to precompile headers for the targets that reuse them.
