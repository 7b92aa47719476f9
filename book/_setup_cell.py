# Set-up for Colab or a fresh kernel: install the book's package only when it is missing.
# However it is installed, the package carries the book's committed results.
try:
    import ncsn_edu
except ImportError:
    import importlib, os, subprocess, sys
    src = os.path.expanduser("~/ncsn-edu")
    if not os.path.isdir(src):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/ncsn-edu/ncsn-edu", src], check=True)
    # --no-deps: torch, numpy, ipywidgets and the rest stay exactly as they are.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", src], check=True)
    importlib.invalidate_caches()
    import ncsn_edu
