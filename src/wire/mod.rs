//! Pure packet formats: build and parse the frames the prober sends and receives.
//! Nothing here touches a socket.
