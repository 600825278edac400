//! trybuild tests of concurry macros live in tests/.
