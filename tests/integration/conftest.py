import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # makes `rewards_for_tests:function` rewards importable
