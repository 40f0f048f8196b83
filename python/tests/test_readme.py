"""The README's Python example runs as written."""

import os
import re


def test_readme_example(root, capsys):
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "no python example in README.md"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert len(out[0]) == 32 and set(out[0]) <= set("ACGT")
    assert out[1] == out[0][:8]
    assert out[-1].startswith("longconv explicit,explicit ")
