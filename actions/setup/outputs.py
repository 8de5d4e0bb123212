"""Print `key=value` lines for GITHUB_OUTPUT from a JSON object that an `mlops ... --json` command wrote.

Usage: outputs.py FILE KEY... Values must be single-line; a missing or null key gives an empty value.
"""

import json
import sys


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        data = json.load(fh)
    for key in argv[2:]:
        value = data.get(key)
        text = "" if value is None else str(value)
        if "\n" in text or "\r" in text:
            print(f"{argv[1]}: '{key}' is not a single line", file=sys.stderr)
            return 1
        print(f"{key.replace('_', '-')}={text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
