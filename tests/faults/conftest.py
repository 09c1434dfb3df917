import sys
from pathlib import Path

# The integration tests' rewards (`rewards_for_tests:function`) are loaded by name, as users load theirs.
sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
