#!/bin/sh
echo "tool: $*"
