"""The mutation harness (tests/mutants.py) stays alive: its mutants match the code, a planted bug is killed,
and a harmless change survives (so "killed" means the tests failed, not that the harness did).

The full run is not CI's (it takes an hour on two shared cores); its last result is in DEVELOPING.md.
"""

import mutants


def test_every_mutant_matches_the_code_exactly_once():
    assert mutants.main(["--check"]) == 0
    assert len(mutants.MUTANTS) >= 25
    assert len({mu.name for mu in mutants.MUTANTS}) == len(mutants.MUTANTS)


def test_planted_bugs_are_killed_and_a_harmless_change_survives():
    by_name = {mu.name: mu for mu in mutants.MUTANTS}
    for name in ("stats-population-std", "verdict-without-the-tolerance"):
        verdict, _, tail = mutants.run(by_name[name])
        assert verdict == "killed", (name, tail)
    harmless = mutants.Mutant("stats-comment", "rir/report/stats.py", "# the interval the report shows",
                              "# the interval shown", ("tests/test_report_stats.py",))
    verdict, _, tail = mutants.run(harmless)
    assert verdict == "survived", tail
