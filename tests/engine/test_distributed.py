"""More than one process, on the CPU (gloo): a worker that dies stops the job clearly and --resume
continues it; two machines (two tools/train_net.py processes on loopback, the README's recipe)
train one model together and evaluate it."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

from ..conftest import REPO

FCN = [
    "--config-file", "configs/shapes/fcn8s.yaml",
    "DATASETS.TRAIN", "('shapes_sem_seg_tiny_train',)", "DATASETS.TEST", "()",
    "SOLVER.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "3", "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip
# After the kill, the launcher must stop the job within this (it notices the dead child at once;
# the other process is terminated by it, not left waiting on the process-group timeout).
STOP_WITHIN_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, proc, seconds, what):
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, f"the run exited before {what}"
        assert time.time() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.1)


def test_killed_worker_stops_the_job_clearly_and_resume_continues(tmp_path):
    """SIGKILL rank 1 of a 2-process run after its second checkpoint: the launcher exits non-zero
    within STOP_WITHIN_S, naming rank 1, its pid and the signal; --resume then continues from the
    last complete checkpoint (the iteration after it) to the end, again with two processes."""
    out = ["OUTPUT_DIR", str(tmp_path)]
    launch = [sys.executable, "tools/train_net.py", "--num-gpus", "2", "--dist-timeout", "60"]
    cmd = launch + FCN
    stderr_file = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(
        cmd + ["SOLVER.MAX_ITER", "100000", *out],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr_file, text=True,
    )  # fmt: skip
    try:
        rank1_log = tmp_path / "log.txt.rank1"

        def rank1_pid():
            found = rank1_log.exists() and re.search(
                r"Rank 1 runs as pid (\d+)", rank1_log.read_text()
            )
            return int(found.group(1)) if found else None

        _wait_for(lambda: (tmp_path / "model_0000005.pth").exists(), proc, 300, "2 checkpoints")
        pid = rank1_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.perf_counter()
        proc.wait(timeout=STOP_WITHIN_S)
        stopped_s = time.perf_counter() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr_file.close()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode != 0 and stopped_s < STOP_WITHIN_S
    assert f"rank 1 (pid {pid}) was killed by SIGKILL" in stderr, stderr[-2000:]
    assert "--resume" in stderr

    last = (tmp_path / "last_checkpoint").read_text()
    done = int(re.search(r"model_(\d+)\.pth", last).group(1))
    resumed = subprocess.run(
        launch + ["--resume", *FCN, "SOLVER.MAX_ITER", str(done + 4), *out],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Starting training from iteration {done + 1}" in resumed.stdout
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_two_machines_on_loopback_train_and_evaluate(tmp_path):
    """The README's two-machine recipe on one host: machine 0 and machine 1, one process each,
    meet at tcp://127.0.0.1:PORT; both see world size 2, train 3 iterations together, and the
    evaluation on shapes_tiny_val (each machine's share of the images, gathered on rank 0) ends in
    rank 0's results.json."""
    port = _free_port()
    procs = []
    for machine in (0, 1):
        cmd = [
            sys.executable, "tools/train_net.py", "--num-gpus", "1",
            "--num-machines", "2", "--machine-rank", str(machine),
            "--dist-url", f"tcp://127.0.0.1:{port}", "--dist-timeout", "120",
            "--config-file", "configs/shapes/mask_rcnn_R18_FPN.yaml",
            "DATASETS.TRAIN", "('shapes_tiny_train',)", "DATASETS.TEST", "('shapes_tiny_val',)",
            "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "()",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path / f"machine{machine}"),
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )  # fmt: skip
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for machine, (p, output) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"machine {machine}:\n{output[-3000:]}"
    assert "Rank of current process: 0. World size: 2" in outputs[0]
    rank1 = (tmp_path / "machine1" / "log.txt.rank1").read_text()
    assert "Rank of current process: 1. World size: 2" in rank1
    assert "Starting training from iteration 0" in rank1
    results = (tmp_path / "machine0" / "results.json").read_text()
    assert '"segm"' in results and '"bbox"' in results
