// Export a drawn view (the capability map, the journey board) as SVG or PNG, in the browser.
//
// The view marks what to draw: elements with data-box are drawn as rectangles in their
// computed colours, elements with data-label as one line of text each (cut to the width they
// have on screen). Positions come from the layout the browser made, so the picture is the page.

import { h } from './dom.js';

const MAX_CANVAS = 16000; // px per side: larger pictures are scaled down (browsers cap canvases)
const MAX_PIXELS = 50_000_000; // and 200 MB of canvas at most
const XML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const xml = (text) => String(text).replace(/[&<>"]/g, (c) => XML_ESCAPES[c]);
let measurer = null;

function fit(text, width, font) {
  measurer = measurer || document.createElement('canvas').getContext('2d');
  measurer.font = font;
  if (measurer.measureText(text).width <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measurer.measureText(`${text.slice(0, mid)}…`).width <= width) lo = mid;
    else hi = mid - 1;
  }
  return lo ? `${text.slice(0, lo)}…` : '';
}

/** The text in at most `most` lines of `width`, as the page wraps it (the last one cut). */
function wrap(text, width, font, most) {
  if (most <= 1) return [fit(text, width, font)].filter(Boolean);
  measurer = measurer || document.createElement('canvas').getContext('2d');
  measurer.font = font;
  const lines = [];
  let line = '';
  const words = text.split(' ');
  for (let i = 0; i < words.length; i += 1) {
    const next = line ? `${line} ${words[i]}` : words[i];
    if (line && measurer.measureText(next).width > width) {
      if (lines.length === most - 1) return [...lines, fit(words.slice(i - line.split(' ').length).join(' '), width, font)];
      lines.push(line);
      line = words[i];
    } else line = next;
  }
  if (line) lines.push(fit(line, width, font));
  return lines;
}

function colour(value) {
  return value && value !== 'rgba(0, 0, 0, 0)' && value !== 'transparent' ? value : null;
}

/** The SVG text of what `root` shows, with `title` above it. */
export function toSvg(root, title) {
  root.classList.add('exporting'); // every box laid out, also those off screen
  // A map far taller than wide (thousands of boxes) is laid out wider for the picture, to
  // about 3:2, so that the picture, and a PNG of it, stays within what a canvas can hold.
  const width = root.clientWidth;
  const height = root.scrollHeight;
  if ('reflow' in root.dataset && height > 3 * width) {
    root.style.width = `${Math.min(MAX_CANVAS, Math.round(Math.sqrt(width * height * 1.5)))}px`;
  }
  try {
    return svgOf(root, title);
  } finally {
    root.classList.remove('exporting');
    root.style.width = '';
  }
}

function svgOf(root, title) {
  const origin = root.getBoundingClientRect();
  const top = 32;
  const width = Math.ceil(root.scrollWidth);
  const height = Math.ceil(root.scrollHeight) + top;
  const dx = -origin.left + root.scrollLeft;
  const dy = -origin.top + root.scrollTop + top;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="4" y="22" font-size="18" font-weight="700" fill="#1c2430">${xml(title)}</text>`,
  ];
  for (const el of root.querySelectorAll('[data-box]')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const style = getComputedStyle(el);
    const fill = colour(style.backgroundColor) || 'none';
    const stroke = colour(style.borderTopColor) && parseFloat(style.borderTopWidth) ? style.borderTopColor : 'none';
    parts.push(`<rect x="${(r.left + dx).toFixed(1)}" y="${(r.top + dy).toFixed(1)}" width="${r.width.toFixed(1)}" height="${r.height.toFixed(1)}" rx="3" fill="${fill}" stroke="${stroke}"/>`);
  }
  for (const el of root.querySelectorAll('[data-label]')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize) || 12;
    const font = `${style.fontWeight} ${size}px ${style.fontFamily}`;
    const lineHeight = parseFloat(style.lineHeight) || size * 1.45;
    const lines = wrap(el.textContent.replace(/\s+/g, ' ').trim(), r.width, font, Math.max(1, Math.round(r.height / lineHeight)));
    lines.forEach((line, i) => {
      const y = r.top + dy + size + i * lineHeight;
      parts.push(`<text x="${(r.left + dx).toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}" font-weight="${style.fontWeight}" fill="${style.color}">${xml(line)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function downloadSvg(root, title, filename) {
  download(new Blob([toSvg(root, title)], { type: 'image/svg+xml' }), `${filename}.svg`);
}

export async function downloadPng(root, title, filename) {
  const svg = toSvg(root, title);
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const area = Math.sqrt(MAX_PIXELS / (image.width * image.height));
    const scale = Math.min(2, area, MAX_CANVAS / image.width, MAX_CANVAS / image.height);
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.floor(image.width * scale));
    canvas.height = Math.max(1, Math.floor(image.height * scale));
    canvas.getContext('2d').drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    download(blob, `${filename}.png`);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** The two export buttons for a view. */
export function exportButtons(root, title, filename) {
  const status = h('span', { role: 'status', class: 'muted' });
  const run = (fn) => async () => {
    status.textContent = '';
    try {
      await fn(root(), title(), filename());
      status.textContent = 'Downloaded.';
    } catch (error) {
      status.textContent = `Export failed: ${error.message}`;
    }
  };
  return h('div', { class: 'export' },
    h('button', { type: 'button', class: 'secondary', onclick: run(downloadSvg) }, 'Download SVG'), ' ',
    h('button', { type: 'button', class: 'secondary', onclick: run(downloadPng) }, 'Download PNG'), ' ',
    status);
}
