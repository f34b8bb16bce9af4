/* The newsletter's signup box, sent in place.

   The plain form that `newsletter embed` prints works without this script: it posts, and
   the visitor comes back. With it, the form is sent with fetch and the answer ("check your
   inbox", or a message beside each field to correct) shows inside the box, every value kept,
   without leaving the article. It also fits the box in a frame (/embed) to the frame's
   height. No framework, no cookie, nothing built from HTML strings. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch || !window.FormData || !window.URL) {
    return;
  }
  var base = new URL(script.src, location.href).origin;
  var FIELDS = ["first_name", "last_name", "email", "consent"];
  var PROBLEMS = {
    429: "Too many attempts. Please wait a minute and try again.",
    network: "We could not reach the signup service. Please try again in a few minutes.",
    other: "Something went wrong on our side. Please try again in a little while."
  };

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) {
      node.textContent = text;
    }
    node.setAttribute("data-newsletter-added", "");
    return node;
  }

  function field(form, name) {
    var input = form.elements.namedItem(name);
    return input && input.nodeType === 1 ? input : null;
  }

  // The hidden attribute alone gives way to any display rule of the site's own CSS.
  function hide(node) {
    node.hidden = true;
    node.style.display = "none";
  }

  function clear(form) {
    Array.prototype.forEach.call(form.querySelectorAll("[data-newsletter-added]"), function (node) {
      node.parentNode.removeChild(node);
    });
    FIELDS.forEach(function (name) {
      var input = field(form, name);
      if (input) {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
        (input.closest(".nl-field") || input.parentNode).classList.remove("nl-has-error");
      }
    });
  }

  function showProblems(form, answer) {
    clear(form);
    var errors = answer.errors || {};
    var summary = element("div", { "class": "nl-summary", role: "alert", tabindex: "-1" });
    summary.appendChild(element("p", {}, answer.message || PROBLEMS.other));
    var list = element("ul", {});
    var first = null;
    FIELDS.forEach(function (name) {
      var input = field(form, name);
      var message = errors[name];
      if (!input || !message || !input.id) {
        return;
      }
      var note = element("p", { "class": "nl-error", id: input.id + "-error" }, message);
      var wrapper = input.closest(".nl-field") || input.parentNode;
      wrapper.classList.add("nl-has-error");
      // Between the label and the input, as on our own form; a checkbox's goes first.
      wrapper.insertBefore(note, input.type === "checkbox" ? wrapper.firstChild : input);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", note.id);
      var link = element("a", { href: "#" + input.id }, message);
      link.addEventListener("click", function (event) {
        event.preventDefault();
        input.focus();
      });
      list.appendChild(element("li", {})).appendChild(link);
      first = first || input;
    });
    if (list.firstChild) {
      summary.appendChild(list);
    }
    form.insertBefore(summary, form.querySelector(".nl-field") || form.firstChild);
    (first || summary).focus();
  }

  function showDone(form, answer) {
    clear(form);
    Array.prototype.forEach.call(form.children, function (child) {
      if (!/^H[1-6]$/.test(child.tagName)) {
        hide(child);
      }
    });
    var done = element("div", { "class": "nl-done", role: "status", tabindex: "-1" });
    done.appendChild(element("p", { "class": "nl-done-title" }, answer.title));
    done.appendChild(element("p", {}, answer.message));
    form.appendChild(done);
    done.focus();
  }

  function send(form) {
    if (form.getAttribute("aria-busy") === "true") {
      return;
    }
    var button = form.querySelector("[type=submit]");
    form.setAttribute("aria-busy", "true");
    if (button) {
      button.disabled = true;
    }
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      mode: "cors",
      credentials: "omit",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, message: PROBLEMS[response.status] || PROBLEMS.other };
      });
    }, function () {
      return { ok: false, message: PROBLEMS.network };
    }).then(function (answer) {
      form.removeAttribute("aria-busy");
      if (button) {
        button.disabled = false;
      }
      (answer.ok ? showDone : showProblems)(form, answer);
    });
  }

  function enhance(form) {
    var action;
    try {
      action = new URL(form.getAttribute("action"), location.href);
    } catch (error) {
      return;
    }
    if (action.origin !== base || form.hasAttribute("data-newsletter-ready")) {
      return;
    }
    form.setAttribute("data-newsletter-ready", "");
    form.noValidate = true;
    var honeypot = field(form, "website");
    if (honeypot) {
      hide(honeypot.closest(".nl-field") || honeypot);
    }
    var style = field(form, "box_style");
    if (style) {
      style.value = "script";
    }
    // The article's own address, for the proof of consent (browsers send only the site's).
    var source = field(form, "source");
    if (source && !source.value) {
      source.value = location.href.split("#")[0];
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(form);
    });
  }

  function enhanceAll() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-newsletter-box]"), enhance);
  }

  // The box in a frame says how tall it is; the frame takes that height and never scrolls.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== base || !data || data.type !== "newsletter:height") {
      return;
    }
    var height = Number(data.height);
    if (!(height > 0 && height < 10000)) {
      return;
    }
    Array.prototype.forEach.call(document.getElementsByTagName("iframe"), function (frame) {
      if (frame.contentWindow !== event.source) {
        return;
      }
      // The site's style may give the frame a border, and count it in the height.
      var style = getComputedStyle(frame);
      var extra = 0;
      if (style.boxSizing === "border-box") {
        ["borderTopWidth", "borderBottomWidth", "paddingTop", "paddingBottom"].forEach(
          function (side) {
            extra += parseFloat(style[side]) || 0;
          }
        );
      }
      frame.style.height = Math.ceil(height + extra) + "px";
    });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhanceAll);
  } else {
    enhanceAll();
  }
})();
