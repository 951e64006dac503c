"""Under mutation testing (`make mutation`), hypothesis runs lean.

mutmut sets MUTANT_UNDER_TEST in every process it runs tests in. A killed mutant only has
to fail, not be explained, so the shrink phase (seconds per failing property) is skipped,
no example database is written into the mutants/ copy, and no deadline can fail a test on
a busy machine. Outside mutmut nothing changes.
"""

from __future__ import annotations

import os

from hypothesis import Phase, settings

if "MUTANT_UNDER_TEST" in os.environ:
    settings.register_profile(
        "mutation",
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        database=None,
        deadline=None,
        max_examples=60,
    )
    settings.load_profile("mutation")
