// Subscribing to the hub, shared by the pages (web.rs inlines it where a page says
// {{SUBSCRIBE_SCRIPT}}). MERCURE is set by the server: the subscribe URL of the page's own
// topics in the hub's protocol generation, and the name of the query parameter that resumes
// after an id (lastEventID in 0.x, last_event_id in 1.0).

// The last-event-id of the Link: <hub>; rel="mercure" header of a response, if any.
function mercureLastEventId(response) {
  for (const link of (response.headers.get("Link") || "").split(/,(?=\s*<)/)) {
    if (!/;\s*rel="?mercure"?(;|$)/.test(link)) continue;
    const id = link.match(/;\s*last-event-id="((?:[^"\\]|\\.)*)"/);
    return id ? id[1].replace(/\\(.)/g, "$1") : null;
  }
  return null;
}

// Subscribes, resuming after the state of `rendered`, the API response the page was rendered
// from: a change committed after it was read is replayed by the hub, however late this runs.
function subscribe(rendered) {
  const url = new URL(MERCURE.subscribeUrl, location.href);
  const lastEventId = mercureLastEventId(rendered);
  if (lastEventId) url.searchParams.set(MERCURE.lastEventIdParam, lastEventId);
  return new EventSource(url, { withCredentials: url.origin !== location.origin });
}
