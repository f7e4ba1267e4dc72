"""Write the default eval set's text as one file, joined as qeval joins it (the text
llama-perplexity reads in the comparison scripts).

Usage: python3 scripts/evaltext.py EVALSET_DIR OUT.txt
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
toml = (root / "evalset.toml").read_text()
m = re.search(r'kind = "text"\s*\nfiles = \[(.*?)\]', toml, re.S)
if not m:
    sys.exit(f"{root / 'evalset.toml'}: no text part (kind = \"text\", files = [...])")
files = re.findall(r'"([^"]+)"', m.group(1))
parts = [(root / f).read_text().rstrip() for f in files]
pathlib.Path(sys.argv[2]).write_text("\n\n".join(parts))
