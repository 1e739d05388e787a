// The dashboard's entry point (bundled by esbuild into dist/orchestrator/dashboard/app.js): a
// two-page app routed by the URL hash, #/ for the jobs table and #/jobs/<id> for one job.
import 'uplot/dist/uPlot.min.css';
import './style.css';

import { clear, h } from './dom.js';
import { showJob } from './job-view.js';
import { showJobs } from './jobs-view.js';

const app = document.getElementById('app')!;
const crumbs = document.getElementById('crumbs')!;
let stop: (() => void) | undefined;

function route(): void {
  stop?.();
  const match = /^#\/jobs\/(.+)$/.exec(location.hash);
  clear(crumbs);
  if (match) {
    const jobId = decodeURIComponent(match[1]!);
    crumbs.append(h('a', { href: '#/' }, 'jobs'), ' / ', jobId);
    stop = showJob(app, jobId);
  } else {
    crumbs.append('jobs');
    stop = showJobs(app);
  }
}

window.addEventListener('hashchange', route);
route();
