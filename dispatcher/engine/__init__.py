"""The sending engine: what an instance actor and the coordinator do, without Ray."""
