"""Execute the notebooks against the tiny demo store, so that they never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("name", ["01_demo_cohort_analysis.ipynb"])
def test_notebook__runs_on_the_demo_store(
    name: str, demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("BIOBANK_DEMO_STORE", str(demo_store))
    monkeypatch.setenv("BIOBANK_DEMO_DIR", str(demo_store.parent / "demo"))
    monkeypatch.setenv("BIOBANK_DEMO_USER", "researcher")
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # PCA, Manhattan and Kaplan-Meier plots
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "cases:" in text
    assert "participants usable for this purpose" in text
