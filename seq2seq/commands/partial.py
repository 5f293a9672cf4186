"""Output files that survive an interrupted job: `translate -i X -o Y --resume`.

Lines go to `Y.partial` as they are translated, beside `Y.partial.json`, which records what they were
made from (the input's sha256, the model, the options). Run the same command again and it checks that
record, cuts a torn last line, skips the lines already there and appends the rest; at the end
`Y.partial` becomes `Y` and the record goes. One line out per line in, so a line is either wholly in
the file or translated again: none is lost or written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.io import write_text


class PartialOutput:
    def __init__(self, path: Path, record: dict):
        self.path, self.record = path, record
        self.partial = path.with_name(path.name + ".partial")
        self.sidecar = path.with_name(path.name + ".partial.json")

    def open(self):
        """-> (Y.partial opened for appending, lines it already holds)."""
        if not self.partial.exists():
            self._write_record()
            return self.partial.open("wb"), 0
        self._check_record()
        done = self._cut_torn_line()
        return self.partial.open("ab"), done

    def finish(self, f) -> None:
        """Make the whole output `Y`: flushed to disk, renamed into place, the record removed."""
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(self.partial, self.path)
        self.sidecar.unlink(missing_ok=True)

    def _write_record(self) -> None:
        write_text(self.sidecar, json.dumps(self.record, indent=1, sort_keys=True) + "\n")

    def _check_record(self) -> None:
        try:
            recorded = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            raise UserError(f"{self.partial} has no readable record of how it was made ({self.sidecar}); "
                            "delete it to start again") from None
        differing = [key for key in sorted(self.record) if recorded.get(key) != self.record[key]]
        if differing:
            raise UserError(f"cannot resume {self.partial}: changed since the run that made it: "
                            f"{', '.join(differing)}; delete it to start again")

    def _cut_torn_line(self) -> int:
        """Drop whatever follows the last complete line (a write the interrupt cut short): -> lines kept."""
        data = self.partial.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            with self.partial.open("r+b") as f:
                f.truncate(keep)
        return data.count(b"\n", 0, keep)
