#!/bin/sh
# Harness self-test: leaves with the status given as $1, so the runner's pass-through of a
# scenario's exit status is itself tested.
echo "exit-status: leaving with $1"
exit "$1"
