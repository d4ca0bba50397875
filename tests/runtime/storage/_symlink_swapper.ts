/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
// A worker that keeps swapping a folder and a file under a storage root for
// symbolic links that lead out of it, then back. Each message is one round of
// `ms` milliseconds; the reply is the number of swaps made so far, so the
// parent can ask for more rounds on a slow (loaded) machine.
interface Start {
  root: string;
  outside: string;
  ms: number;
}

let swaps = 0;
self.onmessage = (message: MessageEvent<Start>) => {
  const { root, outside, ms } = message.data;
  const end = Date.now() + ms;
  const swap = (name: string, target: string) => {
    const path = `${root}/${name}`;
    const parked = `${root}/${name}.parked`;
    try {
      Deno.renameSync(path, parked);
    } catch {
      return; // The adapter replaced or removed it: try again on the next round.
    }
    try {
      // The adapter may have made a new one meanwhile: the attacker removes it.
      Deno.removeSync(path, { recursive: true });
    } catch {
      // Not there: the usual case.
    }
    Deno.symlinkSync(target, path);
    swaps++;
    // Leave the link in place a little while, then put the real one back.
    for (let i = 0; i < 50; i++) Deno.lstatSync(path);
    Deno.removeSync(path, { recursive: true });
    Deno.renameSync(parked, path);
  };
  while (Date.now() < end) {
    try {
      swap("d", outside);
      swap("f", `${outside}/inside.txt`);
    } catch {
      // A step raced with the adapter (it made or removed a name): go on.
    }
  }
  self.postMessage(swaps);
};
