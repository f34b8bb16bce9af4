/* The signup box in a frame tells the page around it how tall it is, so that the page's
   copy of /embed.js can fit the frame to it and the frame never scrolls. A height is no
   secret: any page may hear it. */
(function () {
  "use strict";
  if (window.parent === window) {
    return;
  }
  var last = 0;
  function tell() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== last) {
      last = height;
      window.parent.postMessage({ type: "newsletter:height", height: height }, "*");
    }
  }
  if ("ResizeObserver" in window) {
    new ResizeObserver(tell).observe(document.documentElement);
  }
  window.addEventListener("load", tell);
  tell();
})();
