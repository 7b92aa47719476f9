import sys
from pathlib import Path

# test_live.py's page fixtures are imported by the other live-figure tests of this folder.
sys.path.insert(0, str(Path(__file__).parent))
