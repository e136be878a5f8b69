#!/bin/sh
# Harness self-test: never finishes on its own, so the runner's hard timeout must end the
# guest (bounded: the guest powers off after 10 minutes at the latest).
echo "hang: sleeping"
sleep 600
