// Line charts over steps with uPlot (bundled from npm at build time): the loss curve, and tokens/s.
// Checkpoints and restarts are drawn on both as vertical markers at their step, so a jump in the
// curve can be read against what happened then.
import uPlot from 'uplot';

import type { StepSeries } from '../http/views.js';

export interface Marker {
  step: number;
  kind: 'checkpoint' | 'restart';
  label: string;
}

const MARKER_COLORS: Record<Marker['kind'], string> = { checkpoint: '#2e7d32', restart: '#c62828' };

/** A uPlot hook that draws the markers behind the series. */
function markersPlugin(markers: () => Marker[]): uPlot.Plugin {
  return {
    hooks: {
      drawAxes: [
        (u: uPlot) => {
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          for (const m of markers()) {
            const x = Math.round(u.valToPos(m.step, 'x', true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = MARKER_COLORS[m.kind];
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

interface ChartSpec {
  series: uPlot.Series[];
  axes: uPlot.Axis[];
  scales?: uPlot.Scales;
  data(series: StepSeries): uPlot.AlignedData;
}

/** A chart that follows a StepSeries; `data-points` on its element counts the points shown. */
export class StepChart {
  private readonly plot: uPlot;
  private readonly resize: ResizeObserver;

  constructor(
    readonly element: HTMLElement,
    private readonly spec: ChartSpec,
    series: StepSeries,
    markers: () => Marker[],
  ) {
    const width = Math.max(320, element.clientWidth);
    this.plot = new uPlot(
      {
        width,
        height: 240,
        scales: { x: { time: false }, ...spec.scales },
        series: [{ label: 'step' }, ...spec.series],
        axes: spec.axes,
        legend: { live: true },
        plugins: [markersPlugin(markers)],
      },
      spec.data(series),
      element,
    );
    this.element.dataset.points = String(series.step.length);
    this.resize = new ResizeObserver(() => {
      const w = Math.max(320, this.element.clientWidth);
      if (w !== this.plot.width) this.plot.setSize({ width: w, height: 240 });
    });
    this.resize.observe(element);
  }

  update(series: StepSeries): void {
    this.plot.setData(this.spec.data(series));
    this.element.dataset.points = String(series.step.length);
  }

  /** Redraws (the markers changed). */
  redraw(): void {
    this.plot.redraw(false, false);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot.destroy();
  }
}

export const lossChartSpec: ChartSpec = {
  series: [
    { label: 'loss', stroke: '#1565c0', width: 2, value: (_u, v) => (v == null ? '–' : v.toFixed(4)) },
  ],
  axes: [{ label: 'step' }, { label: 'loss' }],
  data: (s) => [s.step, s.loss],
};

// tokens/s only: MFU is tokens/s times a constant of the job (FLOPs per token over the devices'
// peak), so a second line would lie exactly on this one. Its value is in the job's header.
export const throughputChartSpec: ChartSpec = {
  series: [
    {
      label: 'tokens/s',
      stroke: '#6a1b9a',
      width: 2,
      value: (_u, v) => (v == null ? '–' : v.toFixed(0)),
    },
  ],
  axes: [{ label: 'step' }, { label: 'tokens/s' }],
  data: (s) => [s.step, s.tokensPerSecond],
};
