"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2``: trains the tiny model on the generated
faces with emo's Trainer, checks after every optimiser step that the processes hold the same weights, is
interrupted after its first epoch and resumed from ``last.pt``; rank 0 writes what it saw to OUT/checks.json."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import tiny_config  # noqa: E402
from emo.datasets import make_synthetic  # noqa: E402
from emo.splits import make_splits  # noqa: E402
from emo.train import make_trainer  # noqa: E402


class Interrupted(Exception):
    pass


def main(out: Path) -> None:
    splits = make_splits(make_synthetic())
    cfg = tiny_config(epochs=2, batch_size=32)
    checks = {"steps": [], "disagreeing_steps": [], "shards": [], "validated_alike": []}

    def agree(tensors) -> bool:
        flat = torch.cat([t.detach().float().flatten() for t in tensors])
        both = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(both, flat)
        return all(torch.equal(both[0], other) for other in both[1:])

    def same_weights(step: int) -> None:  # after every optimiser step
        checks["steps"].append(step)
        if not agree(trainer.model.parameters()):
            checks["disagreeing_steps"].append(step)

    def same_model(row: dict) -> None:  # after validation: the weights and the batch-norm statistics
        checks["validated_alike"].append(agree(trainer.model.state_dict().values()))

    def stop_after_first_epoch(row: dict) -> None:
        same_model(row)
        raise Interrupted

    trainer = make_trainer(cfg, out, "cpu", splits=splits, progress=False, tune=False)
    order = trainer.epoch_order(torch.Generator().manual_seed(0))
    shards = [torch.empty_like(order) for _ in range(dist.get_world_size())]
    dist.all_gather(shards, order)
    checks["shards"] = [s.tolist() for s in shards]
    trainer.on_step, trainer.on_epoch = same_weights, stop_after_first_epoch
    try:
        trainer.fit()
    except Interrupted:
        pass
    trainer = make_trainer(cfg, out, "cpu", splits=splits, progress=False, tune=False)
    trainer.on_step, trainer.on_epoch = same_weights, same_model
    trainer.fit(resume=True)
    checks["epochs"] = [row["epoch"] for row in trainer.history]
    checks["steps_per_epoch"] = trainer.steps_per_epoch
    checks["world"] = dist.get_world_size()
    if dist.get_rank() == 0:
        (out / "checks.json").write_text(json.dumps(checks))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
