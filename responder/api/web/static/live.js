// responder dashboard: live updates over server-sent events. No framework, no inline code.
// The server sends `swap` events {target, html}: html is rendered and escaped on the server
// (autoescaped templates), and replaces the inner HTML of the element with that id.
"use strict";

(function () {
  const main = document.getElementById("main");
  const url = main && main.dataset.live;
  const status = document.getElementById("live-status");
  if (!url) {
    return;
  }

  function say(text) {
    if (status && status.textContent !== text) {
      status.textContent = text;
    }
  }

  function swap(target, html) {
    const element = document.getElementById(target);
    if (!element) {
      return;
    }
    // Keep the keyboard focus on the same control when its region is redrawn.
    const focused = document.activeElement;
    const keep = focused && focused.id && element.contains(focused) ? focused.id : null;
    element.innerHTML = html;
    if (keep) {
      const again = document.getElementById(keep);
      if (again) {
        again.focus({ preventScroll: true });
      }
    }
  }

  let retry = null;

  function connect() {
    const source = new EventSource(url);
    source.addEventListener("open", function () {
      say("Live: updates appear by themselves.");
    });
    source.addEventListener("swap", function (event) {
      const message = JSON.parse(event.data);
      swap(message.target, message.html);
    });
    source.addEventListener("logout", function () {
      source.close();
      window.location.assign("/ui/login");
    });
    source.addEventListener("busy", function () {
      source.close();
      say("Live updates are busy; reload the page later.");
    });
    source.addEventListener("error", function () {
      say("Reconnecting live updates…");
      if (source.readyState === EventSource.CLOSED && retry === null) {
        retry = window.setTimeout(function () {
          retry = null;
          connect();
        }, 10000);
      }
    });
  }

  connect();
})();
