// Backpressure for streamx writables (tar-stream's pack entries and extractor).

interface DrainableWritable {
  destroyed: boolean;
  destroying: boolean;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/**
 * Resolves at the stream's next 'drain'; rejects with `closedError()` if it closes first
 * (or already has: a stream destroyed with its parent emitted 'close' before we listened).
 */
export function drained(w: DrainableWritable, closedError: () => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (w.destroyed || w.destroying) {
      reject(closedError());
      return;
    }
    const cleanup = () => {
      w.off('drain', onDrain);
      w.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(closedError());
    };
    w.on('drain', onDrain);
    w.on('close', onClose);
  });
}
