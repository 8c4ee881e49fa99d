echo "$GREETING: this image was built by a Temporal workflow."
echo "Working directory: $(pwd); files: $(ls)"
