#!/usr/bin/python3
"""config_minus.py IN.json OUT.json KEY: OUT is IN without its top-level member
KEY, every other byte as it was (the text of IN with that member and one comma
removed), and KEY was there. Used by test_quantize_cli.sh."""
import json
import sys

src, dst, key = sys.argv[1:]
a, b = open(src).read(), open(dst).read()
ca, cb = json.loads(a), json.loads(b)
if key not in ca or key in cb:
    sys.exit("%s: %s was not dropped" % (dst, key))
ca.pop(key)
if ca != cb:
    sys.exit("%s: members other than %s changed" % (dst, key))
# the text: only a contiguous span disappears (lemma keeps the rest byte for byte)
i = 0
while i < len(b) and a[i] == b[i]:
    i += 1
j = 0
while j < len(b) - i and a[-1 - j] == b[-1 - j]:
    j += 1
if i + j != len(b) or key not in a[i:len(a) - j]:
    sys.exit("%s: more than the %s member changed" % (dst, key))
