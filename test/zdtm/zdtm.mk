# test/zdtm/: zdtm-style test programs, run by test/zdtm/*.bats.
