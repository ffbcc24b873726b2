"""The README's first command: the bundled demo shows the four rewrites and keeps the rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo" / "demo.py"


def test_demo_shows_the_four_rewrites_and_keeps_the_rows() -> None:
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                            timeout=120, check=True)
    out = result.stdout
    assert "new_column_name='full_name'" in out  # 1. rename
    assert "UPDATE \"order\" SET status=\\'placed\\' WHERE \"order\".status IS NULL" in out  # 2.
    assert "batch_op.f('fk_order_invoice_id_invoice')" in out  # 3. named, both directions
    assert "drop_constraint(batch_op.f('fk_order_invoice_id_invoice')" in out
    assert "with op.get_context().autocommit_block():" in out  # 4.
    assert out.count("customer('id', 'full_name') = [(1, 'Ada'), (2, 'Grace')]") == 2
    assert "after downgrade: customer('id', 'name') = [(1, 'Ada'), (2, 'Grace')]" in out
