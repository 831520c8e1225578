"""ray-cluster.yaml is a launcher config that installs the project and starts the API."""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "ray-cluster.yaml"


def test_the_cluster_config_installs_the_project_on_every_node_and_starts_ray() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["cluster_name"]
    assert config["provider"]["type"] == "local"
    assert len(config["provider"]["worker_ips"]) == config["max_workers"]
    assert "." in config["file_mounts"].values()
    assert any(
        "pip install" in c and "-e /opt/whatsapp-dispatcher" in c for c in config["setup_commands"]
    )
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("dispatcher serve" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])
