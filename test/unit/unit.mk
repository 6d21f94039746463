# test/unit/: C unit tests (exit 0 pass, 1 fail, 77 skip) run by test/unit/*.bats.
